"""A job command whose processes leave its process group every way a shell can (setsid, a
double fork, nohup, a process group of their own): the containment tests of the process and
docker runtimes run it."""

# Each way out records "<how> <pid>" in $PIDS, then sleeps long past any test; nohup and a
# process group of its own (through $PYTHON) where available. Then the command does what $1
# says. The e2e tests run it in containers too.
ESCAPE = r"""
record='echo "$0 $$" >> "$PIDS"; exec sleep 1000'
: >> "$PIDS"
ways=2
setsid sh -c "$record" setsid &
sh -c "(sh -c '$record' double-fork &) &"
if command -v nohup > /dev/null; then
    ways=$((ways + 1))
    nohup sh -c "$record" nohup > /dev/null 2>&1 &
fi
if [ -n "$PYTHON" ]; then
    ways=$((ways + 1))
    "$PYTHON" -c 'import os, sys; os.setpgid(0, 0); os.execvp("sh", ["sh", "-c", *sys.argv[1:]])' \
        "$record" process-group &
fi
until [ "$(wc -l < "$PIDS")" -ge "$ways" ]; do sleep 0.02; done
echo "escaped $ways ways"
eval "$1"
"""
