// Reading the host's CPU inputs. See sources.h.
#include "sources.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../strf.h"

namespace cpuhp::host {

using detail::strf;

namespace {

constexpr std::size_t kMaxFileSize = 4u << 20;

constexpr std::string_view kBlanks = " \t\n\v\f\r";

std::string_view trim(std::string_view s) {
  const std::size_t b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  const std::size_t e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

// Splits at '\n'; the last line may lack one.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t e = s.find(sep, pos);
    if (e == std::string_view::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, e - pos));
    pos = e + 1;
  }
}

bool has_token(std::string_view list, std::string_view token) {
  for (std::string_view t : split(list, ','))
    if (t == token) return true;
  return false;
}

std::string parent_dir(const std::string& d) {
  const std::size_t slash = d.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return d.substr(0, slash);
}

// `path` relative to the mount's `root`, as an absolute path ("/" for the
// root itself); nullopt if path is not inside root.
std::optional<std::string> relative_to(const std::string& path, const std::string& root) {
  if (root == "/" || root.empty()) return path.empty() ? std::string("/") : path;
  if (path == root) return std::string("/");
  if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
      path[root.size()] == '/')
    return path.substr(root.size());
  return std::nullopt;
}

std::optional<CgroupDir> resolve(const std::string& root, int version,
                                 const CgroupEntry& entry,
                                 const std::vector<MountEntry>& mounts) {
  for (const MountEntry& m : mounts) {
    const bool match =
        version == 1 ? (m.fstype == "cgroup" && has_token(m.super_options, "cpuset"))
                     : m.fstype == "cgroup2";
    if (!match) continue;
    auto rel = relative_to(entry.path, m.root);
    if (!rel) continue;
    CgroupDir d;
    d.version = version;
    d.cgroup_path = entry.path;
    d.mount_dir = join_root(root, m.mount_point);
    d.dir = *rel == "/" ? d.mount_dir : d.mount_dir + *rel;
    if (d.dir.size() > 1 && d.dir.back() == '/') d.dir.pop_back();
    return d;
  }
  return std::nullopt;
}

}  // namespace

std::string join_root(const std::string& root, std::string_view abs_path) {
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  if (r.empty() || r == "/") return std::string(abs_path);
  if (!abs_path.empty() && abs_path.front() != '/') r += '/';
  r += abs_path;
  return r;
}

Result<std::string> read_text(const std::string& path, bool* missing) {
  if (missing) *missing = false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (missing) *missing = e == ENOENT || e == ENOTDIR;
    return Error(Errc::kSystem,
                 strf("cannot read %s: %s", path.c_str(), std::strerror(e)));
  }
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return Error(Errc::kSystem,
                   strf("cannot read %s: %s", path.c_str(), std::strerror(e)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxFileSize) {
      ::close(fd);
      return Error(Errc::kSystem, strf("cannot read %s: larger than %zu bytes",
                                       path.c_str(), kMaxFileSize));
    }
  }
  ::close(fd);
  return out;
}

Result<CpuMask> parse_cpulist_text(std::string_view text, const std::string& path) {
  auto m = CpuMask::parse(text, kMaxCpus);
  if (!m.ok())
    return Error(m.error().code(),
                 strf("%s: %s", path.c_str(), m.error().message().c_str()));
  return m;
}

Result<CpuMask> read_cpulist(const std::string& path) {
  auto text = read_text(path);
  if (!text.ok()) return text.error();
  return parse_cpulist_text(*text, path);
}

Result<CpuMask> parse_status_affinity(std::string_view status, const std::string& path) {
  constexpr std::string_view kKey = "Cpus_allowed_list:";
  for (std::string_view line : lines_of(status)) {
    if (line.substr(0, kKey.size()) != kKey) continue;
    auto m = CpuMask::parse(trim(line.substr(kKey.size())), kMaxCpus);
    if (!m.ok())
      return Error(m.error().code(), strf("%s: Cpus_allowed_list: %s", path.c_str(),
                                          m.error().message().c_str()));
    return m;
  }
  return Error(Errc::kInvalidArgument,
               strf("%s: no \"Cpus_allowed_list:\" line", path.c_str()));
}

Result<std::vector<CgroupEntry>> parse_proc_cgroup(std::string_view text,
                                                   const std::string& path) {
  std::vector<CgroupEntry> out;
  unsigned lineno = 0;
  for (std::string_view line : lines_of(text)) {
    ++lineno;
    if (trim(line).empty()) continue;
    const std::size_t c1 = line.find(':');
    const std::size_t c2 =
        c1 == std::string_view::npos ? std::string_view::npos : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos)
      return Error(
          Errc::kInvalidArgument,
          strf("%s: line %u \"%.*s\": expected ID:CONTROLLERS:PATH", path.c_str(), lineno,
               static_cast<int>(std::min<std::size_t>(line.size(), 200)), line.data()));
    const std::string_view id = line.substr(0, c1);
    unsigned value = 0;
    bool ok = !id.empty() && id.size() <= 9;
    for (char c : id) {
      if (c < '0' || c > '9') ok = false;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    const std::string_view cg = line.substr(c2 + 1);
    if (!ok || cg.empty() || cg.front() != '/')
      return Error(
          Errc::kInvalidArgument,
          strf("%s: line %u \"%.*s\": %s", path.c_str(), lineno,
               static_cast<int>(std::min<std::size_t>(line.size(), 200)), line.data(),
               ok ? "the path does not start with '/'"
                  : "the hierarchy id is not a number"));
    CgroupEntry e;
    e.hierarchy_id = value;
    const std::string_view ctl = line.substr(c1 + 1, c2 - c1 - 1);
    if (!ctl.empty())
      for (std::string_view t : split(ctl, ',')) e.controllers.emplace_back(t);
    e.path = std::string(cg);
    out.push_back(std::move(e));
  }
  return out;
}

std::string unescape_mountinfo(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const char a = field[i + 1], b = field[i + 2], c = field[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out += static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0'));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

Result<std::vector<MountEntry>> parse_mountinfo(std::string_view text,
                                                const std::string& path) {
  std::vector<MountEntry> out;
  unsigned lineno = 0;
  for (std::string_view line : lines_of(text)) {
    ++lineno;
    if (trim(line).empty()) continue;
    std::vector<std::string_view> f;
    for (std::string_view t : split(line, ' '))
      if (!t.empty()) f.push_back(t);
    std::size_t sep = 0;
    for (std::size_t i = 6; i < f.size(); ++i)
      if (f[i] == "-") {
        sep = i;
        break;
      }
    if (sep == 0 || f.size() < sep + 3)
      return Error(
          Errc::kInvalidArgument,
          strf("%s: line %u \"%.*s\": expected ID PARENT MAJ:MIN ROOT "
               "MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS",
               path.c_str(), lineno,
               static_cast<int>(std::min<std::size_t>(line.size(), 200)), line.data()));
    MountEntry m;
    m.root = unescape_mountinfo(f[3]);
    m.mount_point = unescape_mountinfo(f[4]);
    m.fstype = unescape_mountinfo(f[sep + 1]);
    m.source = unescape_mountinfo(f[sep + 2]);
    m.super_options = sep + 3 < f.size() ? unescape_mountinfo(f[sep + 3]) : std::string();
    if (m.mount_point.empty() || m.mount_point.front() != '/' || m.root.empty() ||
        m.root.front() != '/')
      return Error(Errc::kInvalidArgument,
                   strf("%s: line %u: root \"%s\" and mount point \"%s\" must be "
                        "absolute paths",
                        path.c_str(), lineno, m.root.c_str(), m.mount_point.c_str()));
    out.push_back(std::move(m));
  }
  return out;
}

Result<CgroupLayout> locate_cgroups_from(const std::string& root,
                                         std::string_view proc_cgroup,
                                         std::string_view mountinfo,
                                         const std::string& cgroup_file,
                                         const std::string& mountinfo_file) {
  CgroupLayout layout;
  layout.proc_cgroup_text = std::string(proc_cgroup);
  auto entries = parse_proc_cgroup(proc_cgroup, cgroup_file);
  if (!entries.ok()) return entries.error();
  const CgroupEntry* v1 = nullptr;
  const CgroupEntry* v2 = nullptr;
  for (const CgroupEntry& e : *entries) {
    if (e.hierarchy_id == 0 && e.controllers.empty()) {
      if (!v2) v2 = &e;
    } else {
      for (const std::string& c : e.controllers)
        if (c == "cpuset" && !v1) v1 = &e;
    }
  }
  if (!v1 && !v2) return layout;
  auto mounts = parse_mountinfo(mountinfo, mountinfo_file);
  if (!mounts.ok()) return mounts.error();
  if (v1) layout.v1 = resolve(root, 1, *v1, *mounts);
  if (v2) layout.v2 = resolve(root, 2, *v2, *mounts);
  return layout;
}

Result<CgroupLayout> locate_cgroups(const std::string& root) {
  const std::string cgroup_file = join_root(root, "/proc/self/cgroup");
  bool missing = false;
  auto cg = read_text(cgroup_file, &missing);
  if (!cg.ok()) {
    if (missing) return CgroupLayout{};  // a kernel without cgroups
    return cg.error();
  }
  const std::string mountinfo_file = join_root(root, "/proc/self/mountinfo");
  // Only read mountinfo when a relevant hierarchy is listed.
  auto entries = parse_proc_cgroup(*cg, cgroup_file);
  if (!entries.ok()) return entries.error();
  bool relevant = false;
  for (const CgroupEntry& e : *entries) {
    if (e.hierarchy_id == 0 && e.controllers.empty()) relevant = true;
    for (const std::string& c : e.controllers)
      if (c == "cpuset") relevant = true;
  }
  std::string mi;
  if (relevant) {
    auto m = read_text(mountinfo_file);
    if (!m.ok()) return m.error();
    mi = std::move(*m);
  }
  return locate_cgroups_from(root, *cg, mi, cgroup_file, mountinfo_file);
}

Result<CpusetRead> read_cpuset(const CgroupLayout& layout) {
  CpusetRead out;
  out.mask.set_all();
  auto take = [&](const std::string& file, const std::string& text) -> Status {
    auto m = parse_cpulist_text(text, file);
    if (!m.ok()) return m.error();
    out.mask &= *m;
    out.limited = true;
    out.files.push_back(file);
    return {};
  };
  if (layout.v1) {
    const std::string eff = layout.v1->dir + "/cpuset.effective_cpus";
    bool missing = false;
    auto text = read_text(eff, &missing);
    std::string file = eff;
    if (!text.ok() && missing) {
      // Kernels before 3.17 have no cpuset.effective_cpus.
      file = layout.v1->dir + "/cpuset.cpus";
      auto alt = read_text(file, &missing);
      if (!alt.ok())
        return Error(Errc::kSystem,
                     strf("cgroup v1 cpuset %s: neither cpuset.effective_cpus nor "
                          "cpuset.cpus can be read: %s",
                          layout.v1->dir.c_str(), alt.error().message().c_str()));
      text = std::move(alt);
    }
    if (!text.ok()) return text.error();
    if (Status s = take(file, *text); !s) return s.error();
  }
  if (layout.v2) {
    // A cgroup without the cpuset controller inherits its parent's CPUs.
    std::string d = layout.v2->dir;
    for (unsigned depth = 0; depth < 4096; ++depth) {
      const std::string file = d + "/cpuset.cpus.effective";
      bool missing = false;
      auto text = read_text(file, &missing);
      if (text.ok()) {
        if (Status s = take(file, *text); !s) return s.error();
        break;
      }
      if (!missing) return text.error();
      if (d == layout.v2->mount_dir || d.size() <= layout.v2->mount_dir.size()) break;
      d = parent_dir(d);
    }
  }
  return out;
}

std::vector<std::string> cgroup_watch_dirs(const CgroupLayout& layout) {
  std::vector<std::string> out;
  for (const auto* d : {&layout.v1, &layout.v2}) {
    if (!*d) continue;
    std::string dir = (*d)->dir;
    const std::string& top = (*d)->mount_dir;
    const bool inside = dir.size() >= top.size() && dir.compare(0, top.size(), top) == 0;
    for (unsigned depth = 0; depth < 4096; ++depth) {
      out.push_back(dir);
      if (!inside || dir.size() <= top.size()) break;
      dir = parent_dir(dir);
    }
  }
  return out;
}

Result<HostSnapshot> read_snapshot(const std::string& root, const CpuMask* possible,
                                   CgroupLayout* layout, bool* relocated) {
  if (relocated) *relocated = false;
  const std::string cpu_dir = join_root(root, "/sys/devices/system/cpu");
  CpuMask poss(kMaxCpus);
  if (possible) {
    poss = *possible;
  } else {
    const std::string file = cpu_dir + "/possible";
    auto p = read_cpulist(file);
    if (!p.ok()) return p.error();
    if (p->empty())
      return Error(Errc::kInvalidArgument, strf("%s: no possible CPU", file.c_str()));
    poss = std::move(*p);
  }
  const unsigned capacity = possible ? possible->capacity() : poss.last() + 1;
  HostSnapshot snap(capacity);
  snap.possible |= poss;

  auto present = read_cpulist(cpu_dir + "/present");
  if (!present.ok()) return present.error();
  snap.present |= *present;
  snap.present &= snap.possible;

  auto online = read_cpulist(cpu_dir + "/online");
  if (!online.ok()) return online.error();
  snap.sysfs_online |= *online;
  snap.sysfs_online &= snap.possible;

  const std::string status_file = join_root(root, "/proc/self/status");
  auto status = read_text(status_file);
  if (!status.ok()) return status.error();
  auto affinity = parse_status_affinity(*status, status_file);
  if (!affinity.ok()) return affinity.error();
  snap.affinity |= *affinity;

  // cgroups: re-locate only when /proc/self/cgroup changed (a migration).
  CgroupLayout local;
  CgroupLayout* lay = layout ? layout : &local;
  {
    const std::string cgroup_file = join_root(root, "/proc/self/cgroup");
    bool missing = false;
    auto cg = read_text(cgroup_file, &missing);
    if (!cg.ok() && !missing) return cg.error();
    const std::string text = cg.ok() ? *cg : std::string();
    if (!layout || text != lay->proc_cgroup_text || text.empty()) {
      auto fresh = locate_cgroups(root);
      if (!fresh.ok()) return fresh.error();
      if (relocated && layout && fresh->proc_cgroup_text != lay->proc_cgroup_text)
        *relocated = true;
      *lay = std::move(*fresh);
    }
  }
  auto cpuset = read_cpuset(*lay);
  if (!cpuset.ok()) return cpuset.error();
  if (cpuset->limited) {
    snap.cpuset |= cpuset->mask;
  } else {
    snap.cpuset |= snap.possible;
  }
  snap.cpuset_limited = cpuset->limited;
  snap.cpuset_files = std::move(cpuset->files);
  if (lay->v1) snap.cgroup_v1 = lay->v1->cgroup_path;
  if (lay->v2) snap.cgroup_v2 = lay->v2->cgroup_path;

  snap.wanted |= snap.sysfs_online;
  snap.wanted &= snap.present;
  snap.wanted &= snap.affinity;
  snap.wanted &= snap.cpuset;
  return snap;
}

}  // namespace cpuhp::host
