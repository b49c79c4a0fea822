from idds.cli import main

main()
