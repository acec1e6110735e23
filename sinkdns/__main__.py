from sinkdns.cli import main

raise SystemExit(main())
