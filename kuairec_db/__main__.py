from kuairec_db.cli import main

raise SystemExit(main())
