// The `knowledgebeast` executable; everything lives in kb_cli_lib so tests can link it.
#include "cli/commands.h"

int main(int argc, char** argv) { return kb::cli::RunCli(argc, argv); }
