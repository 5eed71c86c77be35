# Run in the VM inside user-1000.slice (test/vm/enforcement.test.ts): what the kernel says about
# this very process, one KEY=VALUE a line.
pid=$$
echo "cgroup=$(sed -n 's/^0:://p' /proc/$pid/cgroup)"
echo "cpus=$(sed -n 's/^Cpus_allowed_list:\t//p' /proc/$pid/status)"
echo "mems=$(sed -n 's/^Mems_allowed_list:\t//p' /proc/$pid/status)"
# sched_setaffinity to CPU 1 alone: EINVAL when the cpuset leaves no CPU of the mask
if err=$(taskset -c 1 true 2>&1); then echo "pin-cpu1=ok"; else echo "pin-cpu1=${err##*: }"; fi
# open(2) of each node: ok, or the error's text (EPERM = refused by the cgroup's device program)
for d in /dev/null:w /dev/zero:r /dev/nvidia0:r /dev/nvidiactl:r /dev/nvidia1:r /dev/vda:r; do
  if [ "${d#*:}" = w ]; then err=$( { exec 3>"${d%:*}"; } 2>&1 ); else err=$( { exec 3<"${d%:*}"; } 2>&1 ); fi
  if [ -n "$err" ]; then echo "$d=${err##*: }"; else echo "$d=ok"; fi
done
