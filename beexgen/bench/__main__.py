from beexgen.bench.run import cores_main

cores_main()
