// Standalone DeepSeek API emulator: prints its base URL, serves until stdin closes.
#include <cstdio>
#include <iostream>
#include <string>

#include "emulator.h"

int main(int argc, char** argv) {
  enclave::testing::EmulatorOptions o;
  if (argc > 1) o.api_key = argv[1];
  enclave::testing::DeepSeekEmulator emu(o);
  std::printf("%s\n", emu.base_url().c_str());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
