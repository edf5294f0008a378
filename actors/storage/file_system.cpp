#include "actors/storage/file_system.hpp"

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace infinity {
namespace {

[[noreturn]] void throw_io_error(const std::string& action, const std::string& path, int error) {
  throw std::runtime_error("file_storage: cannot " + action + " '" + path +
                           "': " + std::generic_category().message(error));
}

/// Closes the descriptor it owns.
class owned_fd {
 public:
  explicit owned_fd(int fd) : fd_(fd) {}
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  ~owned_fd() { ::close(fd_); } // errors are not actionable: durability comes from fsync

  int get() const { return fd_; }

 private:
  int fd_;
};

int open_fd(const std::string& path, int flags, const char* action) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    throw_io_error(action, path, errno);
  return fd;
}

void sync_fd(int fd, bool data_only, const char* action, const std::string& path) {
  int result;
  do {
    result = data_only ? ::fdatasync(fd) : ::fsync(fd);
  } while (result != 0 && errno == EINTR);
  if (result != 0)
    throw_io_error(action, path, errno);
}

uint64_t size_of(int fd, const std::string& path) {
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    throw_io_error("stat", path, errno);
  return static_cast<uint64_t>(info.st_size);
}

class posix_file final : public file_system::file {
 public:
  posix_file(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  void write_at(uint64_t offset, std::string_view bytes) override {
    const char* data = bytes.data();
    std::size_t size = bytes.size();
    while (size > 0) {
      const ssize_t written = ::pwrite(fd_.get(), data, size, static_cast<off_t>(offset));
      if (written < 0) {
        if (errno == EINTR)
          continue;
        throw_io_error("write to", path_, errno);
      }
      data += written;
      size -= static_cast<std::size_t>(written);
      offset += static_cast<uint64_t>(written);
    }
  }

  std::string read_at(uint64_t offset, std::size_t max_bytes) override {
    std::string bytes(max_bytes, '\0');
    std::size_t got = 0;
    while (got < max_bytes) {
      const ssize_t result =
          ::pread(fd_.get(), bytes.data() + got, max_bytes - got, static_cast<off_t>(offset + got));
      if (result < 0) {
        if (errno == EINTR)
          continue;
        throw_io_error("read", path_, errno);
      }
      if (result == 0)
        break; // end of file
      got += static_cast<std::size_t>(result);
    }
    bytes.resize(got);
    return bytes;
  }

  uint64_t size() override { return size_of(fd_.get(), path_); }

  void truncate(uint64_t size) override {
    if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0)
      throw_io_error("truncate", path_, errno);
  }

  void sync_data() override { sync_fd(fd_.get(), true, "sync", path_); }

 private:
  owned_fd fd_;
  std::string path_;
};

class posix_lock final : public file_system::lock {
 public:
  explicit posix_lock(int fd) : fd_(fd) {}
  int fd() const { return fd_.get(); }

 private:
  owned_fd fd_; // closing it releases the flock
};

} // namespace

bool posix_file_system::create_directories(const std::string& path) {
  std::error_code error;
  const bool created = std::filesystem::create_directories(path, error);
  if (error)
    throw std::runtime_error("file_storage: cannot create data directory '" + path +
                             "': " + error.message());
  return created;
}

std::unique_ptr<file_system::file> posix_file_system::open(const std::string& path,
                                                           open_mode mode) {
  switch (mode) {
  case open_mode::existing:
    return std::make_unique<posix_file>(open_fd(path, O_RDWR, "open"), path);
  case open_mode::create_new:
    return std::make_unique<posix_file>(open_fd(path, O_RDWR | O_CREAT | O_EXCL, "create"), path);
  case open_mode::create_or_truncate:
    return std::make_unique<posix_file>(open_fd(path, O_RDWR | O_CREAT | O_TRUNC, "create"), path);
  }
  throw std::logic_error("posix_file_system::open: unknown mode");
}

std::string posix_file_system::read_file(const std::string& path) {
  owned_fd fd(open_fd(path, O_RDONLY, "open"));
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(size_of(fd.get(), path)));
  char chunk[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd.get(), chunk, sizeof(chunk));
    if (got < 0) {
      if (errno == EINTR)
        continue;
      throw_io_error("read", path, errno);
    }
    if (got == 0)
      return bytes;
    bytes.append(chunk, static_cast<std::size_t>(got));
  }
}

void posix_file_system::sync_directory(const std::string& path) {
  owned_fd fd(open_fd(path, O_RDONLY | O_DIRECTORY, "open directory"));
  sync_fd(fd.get(), false, "sync directory", path);
}

void posix_file_system::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw_io_error("rename '" + from + "' to", to, errno);
}

void posix_file_system::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0)
    throw_io_error("delete", path, errno);
}

std::vector<std::string> posix_file_system::list_directory(const std::string& path) {
  std::vector<std::string> names;
  std::error_code error;
  for (std::filesystem::directory_iterator it(path, error), end; !error && it != end;
       it.increment(error))
    names.push_back(it->path().filename().string());
  if (error)
    throw std::runtime_error("file_storage: cannot list directory '" + path +
                             "': " + error.message());
  return names;
}

std::unique_ptr<file_system::lock> posix_file_system::try_lock(const std::string& path) {
  auto lock = std::make_unique<posix_lock>(open_fd(path, O_RDWR | O_CREAT, "create lock file"));
  if (::flock(lock->fd(), LOCK_EX | LOCK_NB) == 0)
    return lock;
  if (errno == EWOULDBLOCK)
    return nullptr;
  throw_io_error("lock", path, errno);
}

} // namespace infinity
