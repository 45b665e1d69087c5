"""`python -m paddle_cnn ...` is the same as the `paddle-cnn` console command."""
from paddle_cnn.cli import main

raise SystemExit(main())
