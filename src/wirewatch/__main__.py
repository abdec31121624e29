from wirewatch.cli.app import main

main()
