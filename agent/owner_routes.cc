#include "agent/owner_routes.h"

#include <utility>

#include "common/chainlet_key.h"

namespace chainscale {

std::string OwnerRoutes::Key(const std::string& chain_id, const std::string& env_name) {
  return ChainletKeyPrefix(chain_id, env_name);
}

std::optional<OwnerRoutes::Update> OwnerRoutes::Apply(const v1::SyncOwners& message) {
  absl::MutexLock lock(&mu_);
  if (message.reset()) {
    table_parts_.clear();
    in_table_ = true;
  }
  if (in_table_) {
    table_parts_.insert(table_parts_.end(), message.routes().begin(), message.routes().end());
    if (message.continued()) return std::nullopt;
    in_table_ = false;
    Update update;
    update.reset = true;
    routes_.clear();
    for (v1::EnvironmentRoute& route : table_parts_) {
      if (route.agent_id() == agent_id_) {
        update.changes.push_back(
            {route.chain_id(), route.env_name(), route.epoch(),
             {route.decisions().begin(), route.decisions().end()}});
      }
      route.clear_decisions();
      std::string key = Key(route.chain_id(), route.env_name());
      routes_[std::move(key)] = std::move(route);
    }
    table_parts_.clear();
    return update;
  }
  Update update;
  for (const v1::EnvironmentRoute& route : message.routes()) {
    const std::string key = Key(route.chain_id(), route.env_name());
    auto it = routes_.find(key);
    if (it != routes_.end() && it->second.epoch() > route.epoch()) continue;  // stale
    const bool was_mine = it != routes_.end() && it->second.agent_id() == agent_id_;
    const bool mine = route.agent_id() == agent_id_;
    if (mine) {
      update.changes.push_back({route.chain_id(), route.env_name(), route.epoch(),
                                {route.decisions().begin(), route.decisions().end()}});
    } else if (was_mine) {
      update.changes.push_back({route.chain_id(), route.env_name(), 0, {}});
    }
    v1::EnvironmentRoute& held = routes_[key];
    held = route;
    held.clear_decisions();
  }
  return update;
}

std::optional<v1::EnvironmentRoute> OwnerRoutes::Find(const std::string& chain_id,
                                                      const std::string& env_name) const {
  absl::MutexLock lock(&mu_);
  auto it = routes_.find(Key(chain_id, env_name));
  if (it == routes_.end()) return std::nullopt;
  return it->second;
}

int64_t OwnerRoutes::owned() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [key, route] : routes_) n += route.agent_id() == agent_id_ ? 1 : 0;
  return n;
}

}  // namespace chainscale
