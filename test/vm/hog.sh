# Run in the VM as alice (test/vm/enforcement.test.ts): 20 MB in bash's heap, then wait.
x=$(head -c 20000000 /dev/zero | tr '\0' a)
echo allocated > /tmp/hog.$$
while :; do sleep 1; done
