build-tsan/tests/load_client: tests/load_client.c
