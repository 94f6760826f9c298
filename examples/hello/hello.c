#include <stdio.h>

int main(int argc, char **argv) {
    printf("Hello from a strata image!\n");
    for (int i = 1; i < argc; i++) printf("arg: %s\n", argv[i]);
    return 0;
}
