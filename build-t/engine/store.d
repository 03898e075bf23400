build-t/engine/store.o: engine/store.c include/store.h include/kefu.h \
 engine/store_cache.h
include/store.h:
include/kefu.h:
engine/store_cache.h:
