const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const MONTH = `(${MONTHS.join('|')})`
const TIME = '([0-9]{2}):([0-9]{2}):([0-9]{2})'

// RFC 9110 section 5.6.7: IMF-fixdate, and the two obsolete forms a recipient must still accept.
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) ${MONTH} ([0-9]{4}) ${TIME} GMT$`)
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ([0-9]{2})-${MONTH}-([0-9]{2}) ${TIME} GMT$`)
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([0-9]{2}| [0-9]) ${TIME} ([0-9]{4})$`)

function utc (year: number, month: string, day: string, hour: string, minute: string, second: string): number | undefined {
  const monthIndex = MONTHS.indexOf(month)
  const time = Date.UTC(year, monthIndex, Number(day), Number(hour), Number(minute), Number(second))
  const date = new Date(time)
  // Date.UTC rolls 31 Feb over into March, 25:00 into the next day: such a date is invalid here.
  if (date.getUTCDate() !== Number(day) || date.getUTCHours() !== Number(hour) || date.getUTCMinutes() !== Number(minute)) return undefined
  return time
}

/**
 * An HTTP-date (RFC 9110 section 5.6.7) in milliseconds since the epoch, or undefined for anything
 * else: `Date.parse` would read `0`, `2024-01-01` or `Tomorrow 1` as dates, and an invalid `Expires`
 * must mean "already expired" (RFC 9111 section 5.3). `now` places a two-digit year.
 */
export function parseHttpDate (value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined
  let match = IMF_FIXDATE.exec(value)
  if (match !== null) return utc(Number(match[3]), match[2], match[1], match[4], match[5], match[6])
  match = ASCTIME_DATE.exec(value)
  if (match !== null) return utc(Number(match[6]), match[1], match[2].trim(), match[3], match[4], match[5])
  match = RFC850_DATE.exec(value)
  if (match === null) return undefined
  // A two-digit year more than 50 years ahead is the most recent such year in the past.
  const thisYear = new Date(now).getUTCFullYear()
  let year = Math.floor(thisYear / 100) * 100 + Number(match[3])
  if (year > thisYear + 50) year -= 100
  return utc(year, match[2], match[1], match[4], match[5], match[6])
}
