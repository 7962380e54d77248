// Small durable-file helpers shared by the key store, store and audit: atomic replace with fsync,
// whole-file reads, overwrite-then-unlink for key files, and private (owner-only) creation.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/result.h"

namespace enclave::crypto {

// Writes `content` to `path` via a temp file + fsync + rename + directory fsync (mode 0600).
Status write_file_durable(const std::filesystem::path& path, std::string_view content);
Result<std::string> read_file(const std::filesystem::path& path);
// fsyncs a directory so that renames/unlinks inside it survive a crash.
Status fsync_dir(const std::filesystem::path& dir);
// Overwrites the file with zeros, fsyncs, unlinks it and fsyncs the directory.
// (On copy-on-write or wear-levelled storage the overwrite is best effort; the unwrapped key
// never touched the disk, so removing the wrapped copy is what makes the data unrecoverable.)
Status shred_file(const std::filesystem::path& path);

// Creates `dir` and its missing parents with mode 0700, set exactly whatever the umask (keys,
// audit files and the database must not be readable by other users). Directories that already
// exist keep their mode: an operator may have chosen it.
Status create_private_dirs(const std::filesystem::path& dir);
// Creates an empty file with mode 0600 unless `path` exists (then it is left as it is), so that a
// file that a library creates with its own default mode (SQLite: 0644) starts out private.
Status create_private_file(const std::filesystem::path& path);

}  // namespace enclave::crypto
