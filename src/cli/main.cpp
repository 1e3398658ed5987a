// h1bkv: one binary, one subcommand per file (cmd_*.cpp).
#include <cstdio>
int main(int argc, char** argv) {
  std::puts("h1bkv: not yet");
  return 0;
}
