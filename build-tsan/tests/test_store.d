build-tsan/tests/test_store.o: tests/test_store.c \
  tests/../engine/store_cache.h include/store.h include/kefu.h

tests/../engine/store_cache.h:

include/store.h:

include/kefu.h:
