// `enclave tokenize`: token ids / pieces of a text with a GGUF model's tokenizer.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "cli/commands.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace enclave::cli {

void register_tokenize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Tokenize TEXT with a GGUF model's tokenizer");
  struct Opts {
    std::string model;
    std::string text;
    bool ids = false;
    bool pieces = false;
    bool no_bos = false;
    bool special = false;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--model,-m", opts->model, "GGUF file carrying the vocabulary")->required();
  cmd->add_flag("--ids", opts->ids, "Print a JSON array of ids (default)");
  cmd->add_flag("--pieces", opts->pieces, "Print one line per token: id and piece");
  cmd->add_flag("--no-bos", opts->no_bos, "Do not add BOS/EOS even if the vocabulary asks for it");
  cmd->add_flag("--special", opts->special, "Parse control-token texts in TEXT as tokens");
  cmd->add_option("text", opts->text, "Text to tokenize ('-' reads stdin)")->required();
  cmd->callback([opts, &exit_code] {
    if (opts->ids && opts->pieces) {
      std::fprintf(stderr, "error: --ids and --pieces are exclusive\n");
      exit_code = 2;
      return;
    }
    std::string text = opts->text;
    if (text == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    auto file = gguf::GgufFile::open(opts->model);
    if (!file) {
      std::fprintf(stderr, "error: %s\n", file.error().message.c_str());
      exit_code = file.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    auto tok = tokenizer::Tokenizer::from_gguf(*file);
    if (!tok) {
      std::fprintf(stderr, "error: %s\n", tok.error().message.c_str());
      exit_code = 1;
      return;
    }
    const auto ids = tok->encode(text, !opts->no_bos, opts->special);
    if (opts->pieces) {
      for (int32_t id : ids) {
        const std::string piece = tok->token_to_piece(id);
        std::printf("%d\t%s\n", id, piece.c_str());
      }
    } else {
      std::string out = "[";
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(ids[i]);
      }
      out += "]";
      std::printf("%s\n", out.c_str());
    }
    exit_code = 0;
  });
}

}  // namespace enclave::cli
