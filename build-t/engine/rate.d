build-t/engine/rate.o: engine/rate.c include/rate.h include/kefu.h
include/rate.h:
include/kefu.h:
