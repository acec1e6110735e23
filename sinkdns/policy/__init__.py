"""The policy engine: zones/ files -> a frozen PolicyIndex -> block answers.

`loader.load` reads a zones directory into a LoadState (keeping each file's last good version),
`holder.PolicyHolder` owns the index in force and reloads it off the event loop, `index.PolicyIndex`
matches names and addresses, `answer.BlockAnswers` builds what a blocked query gets, and
`report` implements `sinkdns check` and `sinkdns explain`.
"""

from sinkdns.policy.customers import Defaults
from sinkdns.policy.holder import PolicyHolder
from sinkdns.policy.index import PolicyIndex
from sinkdns.policy.rule import Action, Rule

__all__ = ["Action", "Defaults", "PolicyHolder", "PolicyIndex", "Rule"]
