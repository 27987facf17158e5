from closetai.cli import main

raise SystemExit(main())
