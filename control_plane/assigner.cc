#include "control_plane/assigner.h"

#include <algorithm>

#include "common/selector.h"

namespace chainscale {
namespace {

// splitmix64's finaliser: spreads every input bit over the output.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a over the bytes, then mixed: stable across processes, platforms and versions.
uint64_t HashBytes(absl::string_view bytes, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t EnvHash(const ChainEnv& env) {
  // The separator is a byte no name may hold, so ("ab","c") and ("a","bc") differ.
  return Mix(HashBytes(env.env_name, HashBytes("/", HashBytes(env.chain_id))));
}

uint64_t AgentHash(absl::string_view agent_id) { return Mix(HashBytes(agent_id)); }

// Scores from the two hashes: one mix per pair, so scoring every environment for every
// agent of a large fleet stays cheap.
uint64_t Score(uint64_t agent_hash, uint64_t env_hash) { return Mix(agent_hash ^ env_hash); }

class Balancer {
 public:
  Balancer(const std::vector<ChainEnv>& envs, const std::vector<AssignableAgent>& agents)
      : envs_(envs) {
    // Agents in id order, so the result does not depend on the order they were given in.
    for (const AssignableAgent& a : agents) agents_.push_back(&a);
    std::sort(agents_.begin(), agents_.end(),
              [](const AssignableAgent* a, const AssignableAgent* b) {
                return a->agent_id < b->agent_id;
              });
    for (const AssignableAgent* a : agents_) agent_hash_.push_back(AgentHash(a->agent_id));
    env_hash_.reserve(envs.size());
    for (const ChainEnv& e : envs) env_hash_.push_back(EnvHash(e));
    everything_.resize(agents_.size());
    for (size_t a = 0; a < agents_.size(); ++a) {
      everything_[a] = agents_[a]->selector.chain_environments().empty();
    }
    owner_.assign(envs.size(), -1);
    load_.assign(agents_.size(), 0);
  }

  bool Eligible(size_t agent, size_t env) const {
    return everything_[agent] ||
           SelectorMatches(agents_[agent]->selector, envs_[env].chain_id, envs_[env].env_name);
  }
  uint64_t ScoreOf(size_t agent, size_t env) const {
    return Score(agent_hash_[agent], env_hash_[env]);
  }

  std::vector<OwnerMove> Run(const absl::flat_hash_map<ChainEnv, std::string>& owners) {
    absl::flat_hash_map<absl::string_view, int> index;
    for (size_t a = 0; a < agents_.size(); ++a) index[agents_[a]->agent_id] = static_cast<int>(a);
    std::vector<size_t> orphans;
    std::vector<bool> serves_some(agents_.size(), false);
    size_t assignable = 0;
    const bool someone_serves_all = std::find(everything_.begin(), everything_.end(), true) !=
                                    everything_.end();
    std::vector<size_t> restricted;  // agents with a selector: only these need matching
    for (size_t a = 0; a < agents_.size(); ++a) {
      serves_some[a] = everything_[a] && !envs_.empty();
      if (!everything_[a]) restricted.push_back(a);
    }
    for (size_t e = 0; e < envs_.size(); ++e) {
      bool any = someone_serves_all;
      for (size_t a : restricted) {
        if (Eligible(a, e)) any = serves_some[a] = true;
      }
      if (!any) continue;
      ++assignable;
      auto it = owners.find(envs_[e]);
      if (it != owners.end()) {
        auto a = index.find(it->second);
        if (a != index.end() && Eligible(a->second, e)) {
          owner_[e] = a->second;
          ++load_[a->second];
          continue;
        }
      }
      orphans.push_back(e);
    }
    const int64_t serving = std::count(serves_some.begin(), serves_some.end(), true);
    if (serving > 0) {
      floor_ = static_cast<int64_t>(assignable) / serving;
      remainder_ = static_cast<int64_t>(assignable) % serving;
    }
    for (int64_t l : load_) {
      at_ceil_ += l >= Ceil() ? 1 : 0;
      above_ceil_ += l > Ceil() ? 1 : 0;
    }
    std::sort(orphans.begin(), orphans.end(),
              [&](size_t a, size_t b) { return envs_[a] < envs_[b]; });
    for (size_t e : orphans) Place(e);
    TakeShares();

    std::vector<OwnerMove> moves;
    for (size_t e = 0; e < envs_.size(); ++e) {
      std::string from;
      if (auto it = owners.find(envs_[e]); it != owners.end()) from = it->second;
      std::string to = owner_[e] < 0 ? "" : agents_[owner_[e]]->agent_id;
      if (from != to) moves.push_back({envs_[e], std::move(from), std::move(to)});
    }
    // Owners of environments that are gone.
    absl::flat_hash_map<ChainEnv, bool> present;
    for (const ChainEnv& e : envs_) present[e] = true;
    std::vector<OwnerMove> gone;
    for (const auto& [env, agent] : owners) {
      if (!present.contains(env)) gone.push_back({env, agent, ""});
    }
    std::sort(gone.begin(), gone.end(),
              [](const OwnerMove& a, const OwnerMove& b) { return a.env < b.env; });
    moves.insert(moves.end(), gone.begin(), gone.end());
    return moves;
  }

 private:
  int64_t Ceil() const { return floor_ + (remainder_ > 0 ? 1 : 0); }
  // Room for one more without breaking the balance: below the share, or at it while fewer
  // agents than the remainder hold one more.
  bool HasRoom(size_t agent) const {
    return load_[agent] < floor_ ||
           (load_[agent] == floor_ && remainder_ > 0 && at_ceil_ < remainder_);
  }

  void AddLoad(int agent, int64_t delta) {
    const int64_t ceil = Ceil();
    at_ceil_ -= load_[agent] >= ceil ? 1 : 0;
    above_ceil_ -= load_[agent] > ceil ? 1 : 0;
    load_[agent] += delta;
    at_ceil_ += load_[agent] >= ceil ? 1 : 0;
    above_ceil_ += load_[agent] > ceil ? 1 : 0;
  }

  void Assign(size_t env, int to) {
    if (owner_[env] >= 0) AddLoad(owner_[env], -1);
    owner_[env] = to;
    AddLoad(to, +1);
  }

  // An environment without an owner goes to the eligible agent that scores it highest
  // among those with room, or, when none has room, among all eligible; it stays without
  // one when every eligible agent is away on a lease.
  void Place(size_t env) {
    int best_room = -1;
    int best_any = -1;
    for (size_t a = 0; a < agents_.size(); ++a) {
      if (!agents_[a]->accepts_new_work || !Eligible(a, env)) continue;
      const uint64_t s = ScoreOf(a, env);
      if (best_any < 0 || s > ScoreOf(best_any, env)) best_any = static_cast<int>(a);
      if (HasRoom(a) && (best_room < 0 || s > ScoreOf(best_room, env))) {
        best_room = static_cast<int>(a);
      }
    }
    if (best_any >= 0) Assign(env, best_room >= 0 ? best_room : best_any);
  }

  // Agents below their share take the environments that score them highest from agents
  // above it: first from those above the ceiling, then from those above the floor. Then
  // agents still above the ceiling give to agents at the floor the same way.
  void TakeShares() {
    for (int phase = 0; phase < 2; ++phase) {
      for (size_t r = 0; r < agents_.size(); ++r) {
        if (!agents_[r]->accepts_new_work) continue;
        auto wants = [&]() {
          if (load_[r] < floor_) return true;
          if (phase == 0 || load_[r] >= Ceil()) return false;
          return above_ceil_ > 0;
        };
        if (!wants()) continue;
        std::vector<std::pair<uint64_t, size_t>> candidates;
        for (size_t e = 0; e < envs_.size(); ++e) {
          const int o = owner_[e];
          if (o < 0 || o == static_cast<int>(r) || load_[o] <= floor_ || !Eligible(r, e)) continue;
          candidates.emplace_back(ScoreOf(r, e), e);
        }
        std::sort(candidates.begin(), candidates.end(), std::greater<>());
        for (int pass = 0; pass < 2 && wants(); ++pass) {
          const int64_t donor_above = pass == 0 ? Ceil() : floor_;
          for (const auto& [score, e] : candidates) {
            if (!wants()) break;
            const int o = owner_[e];
            if (o == static_cast<int>(r) || load_[o] <= donor_above) continue;
            // At its share the receiver only relieves an agent above the ceiling.
            if (load_[r] >= floor_ && load_[o] <= Ceil()) continue;
            Assign(e, static_cast<int>(r));
          }
        }
      }
    }
  }

  const std::vector<ChainEnv>& envs_;
  std::vector<const AssignableAgent*> agents_;
  std::vector<uint64_t> agent_hash_;
  std::vector<uint64_t> env_hash_;
  std::vector<bool> everything_;
  std::vector<int> owner_;
  std::vector<int64_t> load_;
  int64_t floor_ = 0;
  int64_t remainder_ = 0;
  int64_t at_ceil_ = 0;     // agents holding at least Ceil()
  int64_t above_ceil_ = 0;  // agents holding more than Ceil()
};

}  // namespace

uint64_t RendezvousScore(absl::string_view agent_id, const ChainEnv& env) {
  return Score(AgentHash(agent_id), EnvHash(env));
}

std::vector<OwnerMove> Rebalance(const std::vector<ChainEnv>& envs,
                                 const std::vector<AssignableAgent>& agents,
                                 const absl::flat_hash_map<ChainEnv, std::string>& owners) {
  return Balancer(envs, agents).Run(owners);
}

}  // namespace chainscale
