build-tsan/tests/hostile_client: tests/hostile_client.c
