build-prof/engine/store.o: engine/store.c include/store.h include/kefu.h
include/store.h:
include/kefu.h:
