from jupybox.cli import main

main()
