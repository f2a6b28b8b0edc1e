from mini_diffusion._course.cli import main

raise SystemExit(main())
