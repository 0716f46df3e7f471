from casework.workers.main import main

main()
