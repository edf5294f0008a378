// Placeholder until the node-process work lands: proves the actor library links.
#include <iostream>

#include "actors/messages.hpp"

int main() {
  std::cout << "infinitystore " << INFINITYSTORE_VERSION << "\n";
  return 0;
}
