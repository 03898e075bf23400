build-t/engine/arena.o: engine/arena.c include/arena.h include/kefu.h
include/arena.h:
include/kefu.h:
