# Shared by the e2e shell tests: source it with `. "$(dirname "$0")/lib.sh"`.

# port_free PORT: nothing listens on PORT and nothing holds it (a connection or a bound socket).
port_free() {
  [ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ] || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 1
  return 0
}

# pick_free_port FROM SPAN: a free port in [FROM, FROM + SPAN), drawn at random so that tests
# running at the same time rarely collide (prints it; fails after 50 tries).
pick_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(($1 + RANDOM % $2))
    if port_free "$port"; then
      echo "$port"
      return 0
    fi
  done
  return 1
}
