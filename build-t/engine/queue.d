build-t/engine/queue.o: engine/queue.c include/queue.h include/kefu.h
include/queue.h:
include/kefu.h:
