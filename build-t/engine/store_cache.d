build-t/engine/store_cache.o: engine/store_cache.c engine/store_cache.h \
 include/store.h include/kefu.h
engine/store_cache.h:
include/store.h:
include/kefu.h:
