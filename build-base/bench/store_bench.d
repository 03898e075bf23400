build-base/bench/store_bench: bench/store_bench.c include/kefu.h \
 include/store.h
include/kefu.h:
include/store.h:
