/** Strings that break naive shell quoting: the quoting tests give each back exactly through a real shell. */
export const HOSTILE = [
  "plain",
  "",
  "two words",
  "it's",
  `"double" and 'single'`,
  "$HOME ${PATH} $(id -u) $((1+1))",
  "`uname -a`",
  "line one\nline two\n",
  "tab\there",
  "back\\slash \\n \\' \\\\",
  "glob * ? [a-z] ~root",
  "; rm -rf / && echo pwned | cat > /dev/null &",
  "-n",
  "!history !! #comment",
  "ünïcödé — ✓",
  "\r\u0007\u001b[0m",
];
