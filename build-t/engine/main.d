build-t/engine/main.o: engine/main.c include/cli.h
include/cli.h:
