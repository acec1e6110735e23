"""The block-page host: the page a visitor of a blocked site sees, over HTTP and HTTPS."""

from sinkdns.blockpage.ca import CertificateError, export_ca
from sinkdns.blockpage.facts import BlockFacts, Lookup
from sinkdns.blockpage.server import BlockPageServer, BlockPageStats, Limits, start_block_page
from sinkdns.blockpage.template import TemplateError

__all__ = [
    "BlockFacts", "BlockPageServer", "BlockPageStats", "CertificateError", "Limits", "Lookup", "TemplateError",
    "export_ca", "start_block_page",
]
