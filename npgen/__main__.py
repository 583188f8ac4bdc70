from npgen.cli import main

main()
