package nexmark

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Epoch is the in-order event time of the first event. A fixed epoch makes
// every run with the same seed see the same events (nexmark's
// useWallclockEventTime = false).
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// The generator's parameters: nexmark's defaults (NexmarkConfiguration and
// GeneratorConfig of the nexmark/nexmark Flink generator).
const (
	// FirstEventRate is how fast event time advances: 10,000 events per
	// second, one event every 100 µs.
	FirstEventRate = 10_000

	personProportion  = 1
	auctionProportion = 3
	bidProportion     = 46
	totalProportion   = personProportion + auctionProportion + bidProportion

	hotAuctionRatio = 2 // 1 - 1/2 of bids go to a hot auction
	hotSellersRatio = 4 // 1 - 1/4 of auctions have a hot seller
	hotBiddersRatio = 4 // 1 - 1/4 of bids come from a hot bidder
	// hotBatch: the hot auction, seller and bidder are the first (the
	// second, for bidders) of the last batch of 100 ids.
	hotBatch = 100

	numActivePeople     = 1000
	numInFlightAuctions = 100
	personIDLead        = 10 // ids of people not created yet that may be chosen
	auctionIDLead       = 10 // ids of auctions not created yet that may be chosen

	firstPersonID   = 1000
	firstAuctionID  = 1000
	firstCategoryID = 10
	numCategories   = 5

	avgPersonBytes  = 200
	avgAuctionBytes = 500
	avgBidBytes     = 100

	// delayedOneIn: one event in 10 is out of order (nexmark's
	// probDelayedEvent = 0.1), moved back in event time by up to MaxDelay.
	delayedOneIn = 10
)

// MaxDelay bounds how far an event's time lies behind the in-order time of
// its position in the stream: nexmark's watermark delay (WATERMARK FOR
// dateTime AS dateTime - INTERVAL '4' SECOND).
const MaxDelay = 4 * time.Second

var (
	usStates   = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities   = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	// hotChannels get half of the bids; the other half is spread over
	// numChannels channels "channel-<n>".
	hotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
)

const numChannels = 10_000

// Generator produces nexmark's event stream: people, auctions and bids in
// the proportions 1:3:46, event n of the stream at Epoch + n·100 µs, one
// in ten moved back by up to MaxDelay. The stream is a function of the
// seed: two generators with the same seed produce the same events. A
// Generator is not safe for concurrent use.
type Generator struct {
	r    *rand.Rand
	rate int64 // events per second of event time
	base int64 // Epoch in ms
	n    int64 // events generated so far
	buf  []byte
}

// NewGenerator returns a generator of the event stream of seed, at
// nexmark's FirstEventRate.
func NewGenerator(seed uint64) *Generator { return newGenerator(seed, FirstEventRate) }

// newGenerator returns a generator whose event time advances by rate
// events per second. Tests use a slow rate so that a few thousand events
// span several windows.
func newGenerator(seed uint64, rate int64) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, 0x6e65786d61726b)), rate: rate, base: Epoch.UnixMilli()}
}

// generate returns the first n events of seed's stream at rate.
func generate(seed uint64, rate int64, n int) []Event {
	g := newGenerator(seed, rate)
	events := make([]Event, n)
	for i := range events {
		events[i] = g.Next()
	}
	return events
}

// Next returns the next event.
func (g *Generator) Next() Event {
	n := g.n
	g.n++
	t := g.inOrderTime(n)
	if g.r.IntN(delayedOneIn) == 0 {
		t -= g.r.Int64N(MaxDelay.Milliseconds() + 1)
	}
	switch rem := n % totalProportion; {
	case rem < personProportion:
		return Event{Person: g.person(n, t)}
	case rem < personProportion+auctionProportion:
		return Event{Auction: g.auction(n, t)}
	default:
		return Event{Bid: g.bid(n, t)}
	}
}

// inOrderTime is the event time of event n before any delay (nexmark's
// timestampForEvent).
func (g *Generator) inOrderTime(n int64) int64 {
	return g.base + n*1_000_000/g.rate/1000
}

// lastPerson returns the base-0 id of the latest person created at event
// n, n's own if it is a person.
func lastPerson(n int64) int64 {
	epoch, off := n/totalProportion, n%totalProportion
	if off >= personProportion {
		off = personProportion - 1
	}
	return epoch*personProportion + off
}

// lastAuction returns the base-0 id of the latest auction created at
// event n, n's own if it is an auction; -1 before the first.
func lastAuction(n int64) int64 {
	epoch, off := n/totalProportion, n%totalProportion
	switch {
	case off < personProportion:
		epoch--
		off = auctionProportion - 1
	case off >= personProportion+auctionProportion:
		off = auctionProportion - 1
	default:
		off -= personProportion
	}
	return epoch*auctionProportion + off
}

// randomPerson picks a base-0 person id among the active people, or one
// of the next personIDLead not created yet.
func (g *Generator) randomPerson(n int64) int64 {
	people := lastPerson(n) + 1
	active := min(people, numActivePeople)
	return people - active + g.r.Int64N(active+personIDLead)
}

// randomAuction picks a base-0 auction id among the last
// numInFlightAuctions, or one of the next auctionIDLead not created yet.
func (g *Generator) randomAuction(n int64) int64 {
	last := lastAuction(n)
	first := max(last-numInFlightAuctions, 0)
	return first + g.r.Int64N(last-first+1+auctionIDLead)
}

func (g *Generator) person(n, t int64) *Person {
	p := &Person{
		ID:           lastPerson(n) + firstPersonID,
		Name:         firstNames[g.r.IntN(len(firstNames))] + " " + lastNames[g.r.IntN(len(lastNames))],
		EmailAddress: g.randomString(7) + "@" + g.randomString(5) + ".com",
		CreditCard:   g.creditCard(),
		City:         usCities[g.r.IntN(len(usCities))],
		State:        usStates[g.r.IntN(len(usStates))],
		DateTime:     t,
	}
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = g.extra(size, avgPersonBytes)
	return p
}

func (g *Generator) auction(n, t int64) *Auction {
	a := &Auction{ID: lastAuction(n) + firstAuctionID, DateTime: t}
	if g.r.IntN(hotSellersRatio) > 0 {
		a.Seller = lastPerson(n) / hotBatch * hotBatch
	} else {
		a.Seller = g.randomPerson(n)
	}
	a.Seller += firstPersonID
	a.Category = firstCategoryID + int64(g.r.IntN(numCategories))
	a.InitialBid = g.price()
	// The auction lasts on average as long as it takes to create
	// numInFlightAuctions more, in in-order event time.
	horizon := g.inOrderTime(n+numInFlightAuctions*totalProportion/auctionProportion) - g.inOrderTime(n)
	a.Expires = t + 1 + g.r.Int64N(max(2*horizon, 1))
	a.ItemName = g.randomString(20)
	a.Description = g.randomString(100)
	a.Reserve = a.InitialBid + g.price()
	size := 8 + len(a.ItemName) + len(a.Description) + 5*8
	a.Extra = g.extra(size, avgAuctionBytes)
	return a
}

func (g *Generator) bid(n, t int64) *Bid {
	b := &Bid{DateTime: t}
	if g.r.IntN(hotAuctionRatio) > 0 {
		b.Auction = lastAuction(n) / hotBatch * hotBatch
	} else {
		b.Auction = g.randomAuction(n)
	}
	b.Auction += firstAuctionID
	if g.r.IntN(hotBiddersRatio) > 0 {
		b.Bidder = lastPerson(n)/hotBatch*hotBatch + 1
	} else {
		b.Bidder = g.randomPerson(n)
	}
	b.Bidder += firstPersonID
	b.Price = g.price()
	if g.r.IntN(2) > 0 {
		i := g.r.IntN(len(hotChannels))
		b.Channel, b.URL = hotChannels[i], hotURLs()[i]
	} else {
		c := channels()[g.r.IntN(numChannels)]
		b.Channel, b.URL = c.name, c.url
	}
	b.Extra = g.extra(4*8, avgBidBytes)
	return b
}

// price returns a price in cents, log-uniform between $1 and $1M.
func (g *Generator) price() int64 {
	return int64(math.Round(math.Pow(10, g.r.Float64()*6) * 100))
}

func (g *Generator) creditCard() string {
	g.buf = g.buf[:0]
	for i := range 4 {
		if i > 0 {
			g.buf = append(g.buf, ' ')
		}
		d := g.r.IntN(10000)
		g.buf = append(g.buf, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
	}
	return string(g.buf)
}

// randomString returns 3 to maxLen-1 random letters, one in 13 a space,
// trimmed (nexmark's nextString).
func (g *Generator) randomString(maxLen int) string {
	n := 3 + g.r.IntN(maxLen-3)
	g.buf = g.buf[:0]
	for range n {
		if g.r.IntN(13) == 0 {
			g.buf = append(g.buf, ' ')
		} else {
			g.buf = append(g.buf, byte('a'+g.r.IntN(26)))
		}
	}
	return strings.TrimSpace(string(g.buf))
}

// letters returns n random letters, 13 from each 64-bit draw.
func (g *Generator) letters(n int) string {
	g.buf = g.buf[:0]
	var v uint64
	left := 0
	for range n {
		if left == 0 {
			v, left = g.r.Uint64(), 13 // 26^13 < 2^64
		}
		g.buf = append(g.buf, byte('a'+v%26))
		v /= 26
		left--
	}
	return string(g.buf)
}

// extra returns the padding that brings a record of size bytes (by
// nexmark's count of its fields) to avg bytes on average: avg-size
// letters, ±20% (nexmark's nextExtra).
func (g *Generator) extra(size, avg int) string {
	if size > avg {
		return ""
	}
	avg -= size
	delta := int(math.Round(float64(avg) * 0.2))
	n := avg - delta
	if delta > 0 {
		n += g.r.IntN(2 * delta)
	}
	return g.letters(n)
}

type channel struct{ name, url string }

// channels returns the numChannels ordinary channels, each with a URL of
// its own, nine in ten of them carrying its id; fixed for all runs.
var channels = sync.OnceValue(func() []channel {
	cs := make([]channel, numChannels)
	for i := range cs {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		url := baseURL(r)
		if r.IntN(10) > 0 {
			url += "&channel_id=" + strconv.FormatInt(int64(bits.Reverse32(uint32(i))&math.MaxInt32), 10)
		}
		cs[i] = channel{"channel-" + strconv.Itoa(i), url}
	}
	return cs
})

// hotURLs returns the URLs of hotChannels, fixed for all runs.
var hotURLs = sync.OnceValue(func() []string {
	urls := make([]string, len(hotChannels))
	for i := range urls {
		urls[i] = baseURL(rand.New(rand.NewPCG(uint64(i), 2)))
	}
	return urls
})

func baseURL(r *rand.Rand) string {
	word := func() string {
		b := make([]byte, 3+r.IntN(2))
		for i := range b {
			if r.IntN(13) == 0 {
				b[i] = '_'
			} else {
				b[i] = byte('a' + r.IntN(26))
			}
		}
		return string(b)
	}
	return "https://www.nexmark.com/" + word() + "/" + word() + "/" + word() + "/item.htm?query=1"
}
