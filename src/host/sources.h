// src/host/sources.h — reading the host's CPU inputs from a root folder:
// sysfs cpulists, /proc/self/status, /proc/self/cgroup, /proc/self/mountinfo
// and the cgroup cpuset files. The parsers are pure functions of the text
// (tested on literal strings); the readers add the file name to every error.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cpuhp/cpumask.h"
#include "cpuhp/error.h"
#include "cpuhp/host.h"

namespace cpuhp::host {

// `abs_path` (starting with '/') under `root`: "/" + p is p, "/tmp/x" + p is
// "/tmp/x" + p.
std::string join_root(const std::string& root, std::string_view abs_path);

// The whole file. kSystem "cannot read PATH: REASON" on failure (also for a
// file larger than 4 MiB). `missing` is set (if given) when the reason was
// ENOENT/ENOTDIR, so callers can treat absence specially.
Result<std::string> read_text(const std::string& path, bool* missing = nullptr);

// A cpulist (sysfs, cgroup) into a kMaxCpus-capacity mask.
// kInvalidArgument/kOutOfRange "PATH: <CpuMask::parse message>".
Result<CpuMask> parse_cpulist_text(std::string_view text, const std::string& path);
Result<CpuMask> read_cpulist(const std::string& path);

// The "Cpus_allowed_list:" line of /proc/<pid>/status.
Result<CpuMask> parse_status_affinity(std::string_view status, const std::string& path);

// /proc/self/cgroup: "ID:CONTROLLERS:PATH" per line (v2: "0::PATH").
struct CgroupEntry {
  unsigned hierarchy_id;
  std::vector<std::string> controllers;  // split at ','; empty for v2
  std::string path;                      // may itself contain ':'
};
Result<std::vector<CgroupEntry>> parse_proc_cgroup(std::string_view text,
                                                   const std::string& path);

// /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] -
// FSTYPE SOURCE SUPEROPTS". Octal escapes (\040 for a space) are decoded.
struct MountEntry {
  std::string root;         // the mounted subtree of the filesystem
  std::string mount_point;  // absolute, in the (fake) root's namespace
  std::string fstype;
  std::string source;
  std::string super_options;
};
Result<std::vector<MountEntry>> parse_mountinfo(std::string_view text,
                                                const std::string& path);
std::string unescape_mountinfo(std::string_view field);

// Where the process's cgroups live, for the cpuset.
struct CgroupDir {
  int version = 0;          // 1 or 2
  std::string cgroup_path;  // as in /proc/self/cgroup
  std::string mount_dir;    // the mount point, under root
  std::string dir;          // the cgroup's directory, under root
};
struct CgroupLayout {
  std::string proc_cgroup_text;  // what /proc/self/cgroup said (change detection)
  std::optional<CgroupDir> v1;   // the cpuset hierarchy
  std::optional<CgroupDir> v2;   // the unified hierarchy
};
// Reads /proc/self/cgroup and (if it names a relevant hierarchy)
// /proc/self/mountinfo under root. A missing /proc/self/cgroup means no
// cgroups (empty layout); a hierarchy listed but not mounted is left out.
Result<CgroupLayout> locate_cgroups(const std::string& root);
// Same, from texts already read.
Result<CgroupLayout> locate_cgroups_from(const std::string& root,
                                         std::string_view proc_cgroup,
                                         std::string_view mountinfo,
                                         const std::string& cgroup_file,
                                         const std::string& mountinfo_file);

// The effective cpuset of a layout: v1 cpuset.effective_cpus (else
// cpuset.cpus) in v1.dir; v2 the first cpuset.cpus.effective from v2.dir up
// to v2.mount_dir. kMaxCpus capacity; `limited` false if no file applies.
struct CpusetRead {
  bool limited = false;
  CpuMask mask{kMaxCpus};
  std::vector<std::string> files;
};
Result<CpusetRead> read_cpuset(const CgroupLayout& layout);

// The directories whose writes can change the cpuset: each hierarchy's
// cgroup directory and its ancestors up to the mount point.
std::vector<std::string> cgroup_watch_dirs(const CgroupLayout& layout);

// Everything at once. `capacity` 0: read possible and take its last id + 1;
// otherwise `possible` is given (run time: possible never changes). `layout`
// is a cache: re-located only when /proc/self/cgroup changed; `relocated` tells.
Result<HostSnapshot> read_snapshot(const std::string& root, const CpuMask* possible,
                                   CgroupLayout* layout, bool* relocated);

}  // namespace cpuhp::host
