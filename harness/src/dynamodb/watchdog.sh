# Runs DynamoDB Local and stops it once no process uses it (POSIX sh).
#
# usage: sh watchdog.sh JAVA JAR_DIR PORT RUN_DIR ID LINGER_SECS [JVM_OPTION...]
#
# Users register as files RUN_DIR/users-ID/<pid>.<nonce>. Every second the watchdog forgets
# users whose process is gone. When none is left for LINGER_SECS it stops the JVM. It also
# exits when the JVM dies. The state file RUN_DIR/instance.json is retired (moved aside)
# before the last check for users, so a process either sees no state file, or registers
# before that check and keeps the JVM alive.

java=$1 jar_dir=$2 port=$3 run=$4 id=$5 linger=$6
shift 6
users="$run/users-$id"
state="$run/instance.json"
log="$run/dynamodb-$id.log"

# Whether a pid runs; zombies count as dead (/proc where there is one, kill -0 elsewhere).
alive() {
    if [ -d /proc/self ]; then
        s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        s=${s##*) }
        case $s in Z* | X*) return 1 ;; esac
        return 0
    fi
    kill -0 "$1" 2>/dev/null
}

# Prints how many registered users still run, and forgets the others.
live_users() {
    n=0
    for f in "$users"/*; do
        [ -e "$f" ] || continue
        p=${f##*/}
        p=${p%%.*}
        if alive "$p"; then n=$((n + 1)); else rm -f "$f"; fi
    done
    echo "$n"
}

# Moves the state file aside if it describes this instance; sets $retired.
retire() {
    retired=
    grep -q "\"id\":\"$id\"" "$state" 2>/dev/null || return 0
    mv -f "$state" "$state.$id" 2>/dev/null || return 0
    if grep -q "\"id\":\"$id\"" "$state.$id"; then
        retired="$state.$id"
    else
        # Replaced in between: put it back unless it was replaced again.
        ln "$state.$id" "$state" 2>/dev/null
        rm -f "$state.$id"
    fi
}

# Stops the JVM (TERM, then KILL after 10 s) and cleans up; $1 = keep the log.
stop() {
    kill "$jvm" 2>/dev/null
    i=0
    while alive "$jvm" && [ "$i" -lt 10 ]; do
        sleep 1
        i=$((i + 1))
    done
    alive "$jvm" && kill -9 "$jvm" 2>/dev/null
    wait "$jvm" 2>/dev/null
    [ -n "$retired" ] && rm -f "$retired"
    rm -rf "$users"
    [ "$1" = keep-log ] || rm -f "$log"
    exit 0
}

cd "$jar_dir" || exit 1
"$java" "$@" -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -port "$port" </dev/null >"$log" 2>&1 &
jvm=$!
# The starter reads this line, then stops listening: nothing more goes to stdout.
echo "$jvm"
exec >>"$run/watchdog.log" 2>&1
echo "$(date) $id: dynamodb local pid $jvm on port $port, linger ${linger}s"

idle=0
while :; do
    if ! alive "$jvm"; then
        echo "$(date) $id: dynamodb local (pid $jvm) exited, see $log"
        retire
        stop keep-log
    fi
    if [ "$(live_users)" -gt 0 ]; then idle=0; else idle=$((idle + 1)); fi
    if [ "$idle" -gt "$linger" ]; then
        retire
        if [ "$(live_users)" -gt 0 ]; then
            # A process registered while we retired the state: keep serving it.
            [ -n "$retired" ] && ln "$retired" "$state" 2>/dev/null
            [ -n "$retired" ] && rm -f "$retired"
            idle=0
        else
            echo "$(date) $id: no users for ${linger}s, stopping dynamodb local (pid $jvm)"
            stop
        fi
    fi
    sleep 1
done
