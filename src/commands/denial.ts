// What a user refused a login is told, by account and by session-open alike (the PAM conversation).

export function denialMessage(user: string): string {
  return `Access denied: user ${user} has no active jobs on this node`;
}
