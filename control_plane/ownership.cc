#include "control_plane/ownership.h"

#include <algorithm>
#include <utility>

namespace chainscale {

Ownership::Ownership(OwnershipOptions options, int64_t generation, std::vector<ChainEnv> envs,
                     const std::vector<StoredOwner>& stored, absl::Time now)
    : options_(options), generation_(generation) {
  std::sort(envs.begin(), envs.end());
  envs.erase(std::unique(envs.begin(), envs.end()), envs.end());
  envs_ = std::move(envs);
  for (const StoredOwner& o : stored) {
    if (o.owner.agent_id().empty()) continue;
    owners_[ChainEnv{o.chain_id, o.env_name}] = o.owner;
    Agent& agent = agents_[o.owner.agent_id()];
    agent.lease_end = now + options_.lease_ttl;  // its selector comes with its hello
  }
}

std::vector<HandOver> Ownership::SetEnvironments(std::vector<ChainEnv> envs) {
  std::sort(envs.begin(), envs.end());
  envs.erase(std::unique(envs.begin(), envs.end()), envs.end());
  envs_ = std::move(envs);
  return Rebalance();
}

std::vector<HandOver> Ownership::Connect(const std::string& agent_id,
                                         const v1::Selector& selector) {
  Agent& agent = agents_[agent_id];
  agent.selector = selector;
  agent.connected = true;
  agent.lease_end.reset();
  return Rebalance();
}

void Ownership::Disconnect(const std::string& agent_id, absl::Time now) {
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) return;
  it->second.connected = false;
  it->second.lease_end = now + options_.lease_ttl;
}

std::vector<HandOver> Ownership::Expire(absl::Time now) {
  bool expired = false;
  for (auto it = agents_.begin(); it != agents_.end();) {
    const Agent& a = it->second;
    if (!a.connected && a.lease_end.has_value() && *a.lease_end <= now) {
      agents_.erase(it++);
      expired = true;
    } else {
      ++it;
    }
  }
  if (!expired) return {};
  return Rebalance();
}

std::optional<absl::Time> Ownership::NextExpiry() const {
  std::optional<absl::Time> next;
  for (const auto& [id, a] : agents_) {
    if (!a.connected && a.lease_end.has_value() && (!next.has_value() || *a.lease_end < *next)) {
      next = a.lease_end;
    }
  }
  return next;
}

std::vector<HandOver> Ownership::Rebalance() {
  std::vector<AssignableAgent> agents;
  agents.reserve(agents_.size());
  for (const auto& [id, a] : agents_) agents.push_back({id, a.selector, a.connected});
  absl::flat_hash_map<ChainEnv, std::string> current;
  current.reserve(owners_.size());
  for (const auto& [env, owner] : owners_) current[env] = owner.agent_id();

  std::vector<HandOver> hand_overs;
  for (OwnerMove& m : chainscale::Rebalance(envs_, agents, current)) {
    HandOver h{std::move(m.env), std::move(m.from), std::move(m.to), 0};
    if (h.to.empty()) {
      owners_.erase(h.env);
    } else {
      h.epoch = (generation_ << 32) + ++counter_;
      v1::EnvironmentOwner& owner = owners_[h.env];
      owner.set_agent_id(h.to);
      owner.set_epoch(h.epoch);
    }
    hand_overs.push_back(std::move(h));
  }
  return hand_overs;
}

std::optional<v1::EnvironmentOwner> Ownership::OwnerOf(const ChainEnv& env) const {
  auto it = owners_.find(env);
  if (it == owners_.end()) return std::nullopt;
  return it->second;
}

bool Ownership::IsCurrent(const ChainEnv& env, const std::string& agent_id,
                          int64_t epoch) const {
  auto it = owners_.find(env);
  return it != owners_.end() && it->second.agent_id() == agent_id && it->second.epoch() == epoch;
}

std::vector<std::pair<ChainEnv, int64_t>> Ownership::OwnedBy(const std::string& agent_id) const {
  std::vector<std::pair<ChainEnv, int64_t>> owned;
  for (const auto& [env, owner] : owners_) {
    if (owner.agent_id() == agent_id) owned.emplace_back(env, owner.epoch());
  }
  std::sort(owned.begin(), owned.end());
  return owned;
}

absl::flat_hash_map<std::string, int64_t> Ownership::OwnedCounts() const {
  absl::flat_hash_map<std::string, int64_t> counts;
  for (const auto& [env, owner] : owners_) ++counts[owner.agent_id()];
  return counts;
}

std::vector<StoredOwner> Ownership::ToStored(const std::vector<HandOver>& hand_overs) {
  std::vector<StoredOwner> stored;
  stored.reserve(hand_overs.size());
  for (const HandOver& h : hand_overs) {
    StoredOwner o{h.env.chain_id, h.env.env_name, {}};
    if (!h.to.empty()) {
      o.owner.set_agent_id(h.to);
      o.owner.set_epoch(h.epoch);
    }
    stored.push_back(std::move(o));
  }
  return stored;
}

}  // namespace chainscale
