build-t/engine/kefu.o: engine/kefu.c include/kefu.h
include/kefu.h:
