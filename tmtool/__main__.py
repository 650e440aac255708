from tmtool.cli import main

raise SystemExit(main())
