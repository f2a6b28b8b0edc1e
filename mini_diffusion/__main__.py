from mini_diffusion.cli import main

raise SystemExit(main())
