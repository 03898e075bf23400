build-prof/engine/log.o: engine/log.c include/log.h
include/log.h:
