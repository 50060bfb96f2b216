from prismer_cli.cli import main

main()
