from prismer_cli.main import main

main()
