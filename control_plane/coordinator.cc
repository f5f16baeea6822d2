#include "control_plane/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "control_plane/sync_hub.h"

namespace chainscale {
namespace {

// Room left in a message for its envelope.
constexpr size_t kEnvelopeBytes = 256;

// Every chain environment in the store.
absl::StatusOr<std::vector<ChainEnv>> ReadEnvironments(const Store& store) {
  std::vector<ChainEnv> envs;
  std::string after;
  for (;;) {
    absl::StatusOr<std::vector<v1::Chain>> page = store.ListChains(after, 1000);
    if (!page.ok()) return page.status();
    if (page->empty()) return envs;
    for (const v1::Chain& chain : *page) {
      for (const std::string& env : chain.environments()) envs.push_back({chain.chain_id(), env});
    }
    after = page->back().chain_id();
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(Store* store,
                                                                Committer* committer,
                                                                OwnershipOptions options,
                                                                const Clock& clock) {
  absl::StatusOr<int64_t> generation = store->BeginGeneration();
  if (!generation.ok()) return generation.status();
  absl::StatusOr<std::vector<StoredOwner>> stored = store->ListOwners();
  if (!stored.ok()) return stored.status();
  absl::StatusOr<std::vector<ChainEnv>> envs = ReadEnvironments(*store);
  if (!envs.ok()) return envs.status();
  auto ownership =
      std::make_unique<Ownership>(options, *generation, *envs, *stored, clock.Now());
  return std::unique_ptr<Coordinator>(
      new Coordinator(store, committer, clock, std::move(ownership), *std::move(envs)));
}

Coordinator::Coordinator(Store* store, Committer* committer, const Clock& clock,
                         std::unique_ptr<Ownership> ownership, std::vector<ChainEnv> envs)
    : store_(store),
      committer_(committer),
      clock_(clock),
      ownership_(std::move(ownership)),
      envs_(std::move(envs)),
      known_(envs_.begin(), envs_.end()) {
  thread_ = std::thread([this] { Run(); });
}

Coordinator::~Coordinator() { Stop(); }

void Coordinator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Coordinator::SetListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void Coordinator::Connected(const std::string& agent_id, const v1::Selector& selector,
                            const std::string& address) {
  absl::MutexLock lock(&mu_);
  events_.push_back({Event::kConnected, agent_id, selector, address, {}, {}});
}

void Coordinator::Disconnected(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  events_.push_back({Event::kDisconnected, agent_id, {}, {}, {}, {}});
}

void Coordinator::Committed(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes) {
  Event event{Event::kCommitted, {}, {}, {}, {}, {}};
  auto touch = [](std::vector<ChainEnv>& envs, const v1::ChainletKey& key) {
    if (envs.empty() || envs.back().chain_id != key.chain_id() ||
        envs.back().env_name != key.env_name()) {
      envs.push_back({key.chain_id(), key.env_name()});
    }
  };
  for (const auto& change : changes) {
    for (const v1::ChainletState& state : change->upserts()) touch(event.upserted, state.key());
    for (const v1::ChainletKey& key : change->removals()) touch(event.removed, key);
  }
  if (event.upserted.empty() && event.removed.empty()) return;
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
}

absl::Status Coordinator::Fence(const v1::ScalingDecision& decision) const {
  absl::MutexLock lock(&mu_);
  if (ownership_->IsCurrent({decision.chain_id(), decision.env_name()}, decision.agent_id(),
                            decision.epoch())) {
    return absl::OkStatus();
  }
  std::optional<v1::EnvironmentOwner> owner =
      ownership_->OwnerOf({decision.chain_id(), decision.env_name()});
  return absl::FailedPreconditionError(absl::StrCat(
      "a decision of epoch ", decision.epoch(), " for ", decision.chain_id(), "/",
      decision.env_name(), ", which ",
      owner.has_value() ? absl::StrCat(owner->agent_id(), " owns under epoch ", owner->epoch())
                        : std::string("nobody owns now")));
}

std::optional<v1::EnvironmentOwner> Coordinator::OwnerOf(const std::string& chain_id,
                                                         const std::string& env_name) const {
  absl::MutexLock lock(&mu_);
  return ownership_->OwnerOf({chain_id, env_name});
}

Coordinator::Stats Coordinator::stats() const {
  absl::MutexLock lock(&mu_);
  Stats stats;
  stats.hand_overs = hand_overs_;
  stats.expired_leases = expired_leases_;
  for (const auto& [agent, address] : addresses_) stats.owned[agent] = 0;
  for (const auto& [agent, count] : ownership_->OwnedCounts()) stats.owned[agent] = count;
  return stats;
}

v1::EnvironmentRoute Coordinator::RouteLocked(const ChainEnv& env) const {
  v1::EnvironmentRoute route;
  route.set_chain_id(env.chain_id);
  route.set_env_name(env.env_name);
  if (std::optional<v1::EnvironmentOwner> owner = ownership_->OwnerOf(env)) {
    route.set_agent_id(owner->agent_id());
    route.set_epoch(owner->epoch());
    if (auto a = addresses_.find(owner->agent_id()); a != addresses_.end()) {
      route.set_address(a->second);
    }
  }
  return route;
}

std::vector<v1::SyncOwners> Coordinator::Chunk(std::vector<v1::EnvironmentRoute> routes,
                                               bool reset) {
  std::vector<v1::SyncOwners> messages(1);
  messages.back().set_reset(reset);
  size_t bytes = 0;
  for (v1::EnvironmentRoute& route : routes) {
    const size_t size = route.ByteSizeLong() + 8;
    if (bytes > 0 && bytes + size > kSyncMaxMessageBytes - kEnvelopeBytes) {
      messages.back().set_continued(true);
      messages.emplace_back();
      bytes = 0;
    }
    *messages.back().add_routes() = std::move(route);
    bytes += size;
  }
  return messages;
}

void Coordinator::Publish(const std::vector<HandOver>& hand_overs,
                           std::vector<RouteDelivery>* out) {
  if (hand_overs.empty()) return;
  committer_->StoreOwners(Ownership::ToStored(hand_overs));
  std::vector<v1::EnvironmentRoute> routes;
  {
    absl::MutexLock lock(&mu_);
    hand_overs_ += static_cast<int64_t>(hand_overs.size());
    for (const HandOver& h : hand_overs) routes.push_back(RouteLocked(h.env));
  }
  // A new owner that takes over from another starts from the stored decisions: they are
  // newer than what its snapshot held.
  for (size_t i = 0; i < hand_overs.size(); ++i) {
    const HandOver& h = hand_overs[i];
    if (h.from.empty() || h.to.empty()) continue;
    absl::StatusOr<std::vector<v1::ChainletState>> chainlets =
        store_->ListChainlets(h.env.chain_id, h.env.env_name);
    if (!chainlets.ok()) continue;  // the new owner starts from its snapshot's decisions
    for (const v1::ChainletState& c : *chainlets) {
      if (c.has_decision()) *routes[i].add_decisions() = c.decision();
    }
  }
  for (v1::SyncOwners& message : Chunk(std::move(routes), /*reset=*/false)) {
    out->push_back({"", std::move(message)});
  }
}

void Coordinator::Run() {
  for (;;) {
    std::deque<Event> events;
    Listener listener;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !events_.empty();
      };
      std::optional<absl::Time> expiry = ownership_->NextExpiry();
      if (expiry.has_value()) {
        mu_.AwaitWithDeadline(absl::Condition(&ready), *expiry);
      } else {
        mu_.Await(absl::Condition(&ready));
      }
      if (stopping_) return;
      events.swap(events_);
      listener = listener_;
    }
    std::vector<RouteDelivery> deliveries;
    for (Event& event : events) {
      std::vector<HandOver> moved;
      switch (event.kind) {
        case Event::kConnected: {
          std::vector<v1::EnvironmentRoute> table;
          {
            absl::MutexLock lock(&mu_);
            addresses_[event.agent_id] = event.address;
            moved = ownership_->Connect(event.agent_id, event.selector);
          }
          Publish(moved, &deliveries);
          {
            absl::MutexLock lock(&mu_);
            table.reserve(envs_.size());
            for (const ChainEnv& env : envs_) table.push_back(RouteLocked(env));
          }
          for (v1::SyncOwners& message : Chunk(std::move(table), /*reset=*/true)) {
            deliveries.push_back({event.agent_id, std::move(message)});
          }
          LogInfo("agent joined the pool",
                  {{"agent_id", event.agent_id},
                   {"address", event.address},
                   {"moved", std::to_string(moved.size())}});
          break;
        }
        case Event::kDisconnected: {
          absl::MutexLock lock(&mu_);
          ownership_->Disconnect(event.agent_id, clock_.Now());
          break;
        }
        case Event::kCommitted: {
          // Settings updates touch known environments: only new ones and removals need a
          // look at the store.
          bool changed = false;
          auto check = [&](const ChainEnv& env) {
            absl::StatusOr<v1::Chain> chain = store_->GetChain(env.chain_id);
            const bool exists =
                chain.ok() && std::find(chain->environments().begin(),
                                        chain->environments().end(),
                                        env.env_name) != chain->environments().end();
            if (exists == known_.contains(env)) return;
            changed = true;
            if (exists) {
              known_.insert(env);
            } else {
              known_.erase(env);
            }
          };
          for (const ChainEnv& env : event.upserted) {
            if (!known_.contains(env)) check(env);
          }
          for (const ChainEnv& env : event.removed) check(env);
          if (!changed) break;
          envs_.assign(known_.begin(), known_.end());
          std::sort(envs_.begin(), envs_.end());
          {
            absl::MutexLock lock(&mu_);
            moved = ownership_->SetEnvironments(envs_);
          }
          Publish(moved, &deliveries);
          break;
        }
      }
    }
    std::vector<HandOver> expired;
    {
      absl::MutexLock lock(&mu_);
      std::optional<absl::Time> expiry = ownership_->NextExpiry();
      if (expiry.has_value() && *expiry <= clock_.Now()) {
        ++expired_leases_;
        expired = ownership_->Expire(clock_.Now());
      }
    }
    if (!expired.empty()) {
      LogInfo("a lease ran out; its work was handed over",
              {{"moved", std::to_string(expired.size())}});
    }
    Publish(expired, &deliveries);
    if (!deliveries.empty() && listener) listener(std::move(deliveries));
  }
}

}  // namespace chainscale
