// PostgreSQL's LISTEN/NOTIFY for the job store: the servers sharing one database tell each other
// that a job changed (the store's dialect().notify at commit), so a server waiting for work or
// watching a job learns of it at once instead of polling the tables.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

typedef struct pg_conn PGconn;

namespace selene::jobs::sql {

// Owns one libpq connection of its own (a connection in a transaction cannot take
// notifications) and the thread that waits on it.
//
// NOTIFY is not durable: what is sent while the connection is down is lost. After the
// connection drops (PostgreSQL restarted) the listener reconnects with backoff (100 ms doubling
// to 2 s), LISTENs again and only then calls on_reconnect, so an owner that re-reads the state
// it cares about there misses nothing.
class PostgresListener {
 public:
  using NotifyCallback = std::function<void(const std::string& payload)>;
  using ReconnectCallback = std::function<void()>;

  // Connects as PostgresConnection::Open does (`uri`, `password` and errors alike) and LISTENs
  // on `channel` before returning, so every NOTIFY committed after Start returns reaches
  // on_notify. `channel` is a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters),
  // else InvalidArgument. Both callbacks run on the listener's thread, one at a time; they must
  // not destroy the listener. Either may be empty.
  static StatusOr<std::unique_ptr<PostgresListener>> Start(const std::string& uri,
                                                           const std::string& password,
                                                           const std::string& channel,
                                                           NotifyCallback on_notify,
                                                           ReconnectCallback on_reconnect);

  // Stops the thread (at once, even in the middle of a reconnect) and joins it.
  ~PostgresListener();
  PostgresListener(const PostgresListener&) = delete;
  PostgresListener& operator=(const PostgresListener&) = delete;

  const std::string& location() const { return location_; }
  const std::string& channel() const { return channel_; }

 private:
  PostgresListener(PGconn* conn, std::string location, std::string channel,
                   NotifyCallback on_notify, ReconnectCallback on_reconnect, int wake_read,
                   int wake_write);

  void Run();
  // Connects again without blocking the thread (so Stop stays prompt) and LISTENs; false when
  // that failed or the listener is stopping.
  bool Reconnect();
  void DeliverNotifications();
  // Waits until `socket` is ready for `events` (poll's POLLIN or POLLOUT; -1: no socket, just
  // wait) or `timeout` passes; false when stopping.
  bool Wait(int socket, short events, int timeout_ms);
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  PGconn* const conn_;  // used by the thread only, once started
  const std::string location_;
  const std::string channel_;
  const NotifyCallback on_notify_;
  const ReconnectCallback on_reconnect_;
  // A pipe that the destructor writes to, so the thread's poll() wakes at once.
  const int wake_read_;
  const int wake_write_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace selene::jobs::sql
