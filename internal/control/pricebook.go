package control

import (
	"context"
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The price book in use is stored, so that every server, and a server
// started again, checks a new one against it: prices apply from their
// date forward, never to usage already past (billing.CheckChange). The
// service's first book from a file may replace the built-in list prices
// (billing.DefaultBook) whole: that is setting the service up, until usage
// has been summed with the built-in prices (fixPriceBook). A server
// without a book of its own takes the one in use.

// storedBook is the book in use, as its text.
type storedBook struct {
	Metadata apiv1.ObjectMeta `json:"metadata"` // ID: "current"
	Text     string           `json:"text"`
	// FromFile: an operator's book (else the built-in one).
	FromFile bool `json:"fromFile,omitempty"`
	// Fixed: usage has been summed with its prices (usagefold.go), so
	// its past prices never change, even the built-in book's.
	Fixed bool `json:"fixed,omitempty"`
}

func (b *storedBook) Meta() *apiv1.ObjectMeta { return &b.Metadata }

// ApplyPriceBook checks text (a price book; fromFile: the operator's)
// against the book in use and makes it the book of the bills. A book that
// is not valid, or that would change past prices, is refused with the
// reason, and the book in use stays.
func (s *Service) ApplyPriceBook(ctx context.Context, text []byte, fromFile bool) error {
	next, err := billing.Parse(text)
	if err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := s.books.Get(ctx, "current")
		switch {
		case errdefs.IsNotFound(err):
			err = s.books.Create(ctx, &storedBook{Metadata: apiv1.ObjectMeta{ID: "current", CreatedAt: s.now()}, Text: string(text), FromFile: fromFile}, nil)
		case err != nil:
			return err
		case cur.Text == string(text):
			s.setPriceBook(next, cur.Text)
			return nil
		case !fromFile: // a server without a book of its own takes the one in use
			stored, err := billing.Parse([]byte(cur.Text))
			if err != nil {
				return fmt.Errorf("the stored price book: %w", err)
			}
			s.setPriceBook(stored, cur.Text)
			return nil
		default:
			if cur.FromFile || cur.Fixed {
				old, perr := billing.Parse([]byte(cur.Text))
				if perr != nil && cur.Fixed {
					return fmt.Errorf("the stored price book, whose past is fixed: %w", perr)
				}
				if perr == nil {
					if cerr := billing.CheckChange(old, next, s.now()); cerr != nil {
						return fmt.Errorf("price book: %w: %w", errdefs.ErrInvalidArgument, cerr)
					}
				}
			}
			cur.Text, cur.FromFile = string(text), true
			err = s.books.Update(ctx, cur, nil)
		}
		if errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return err
		}
		s.setPriceBook(next, string(text))
		return nil
	}
	return fmt.Errorf("price book: too many concurrent changes: %w", errdefs.ErrConflict)
}

// PriceBook is the book bills are rated with now (nil: none yet).
func (s *Service) PriceBook() *billing.Book { return s.prices.p.Load() }

// RefreshPriceBook takes the stored book when another server changed it:
// every server rates with the book in use.
func (s *Service) RefreshPriceBook(ctx context.Context) error {
	cur, err := s.books.Get(ctx, "current")
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if t := s.prices.text.Load(); t != nil && *t == cur.Text {
		return nil
	}
	b, err := billing.Parse([]byte(cur.Text))
	if err != nil {
		return fmt.Errorf("the stored price book: %w", err)
	}
	s.setPriceBook(b, cur.Text)
	return nil
}

// setPriceBook makes b, of text, the book of the bills.
func (s *Service) setPriceBook(b *billing.Book, text string) {
	s.prices.p.Store(b)
	s.prices.text.Store(&text)
}

// fixPriceBook is the stored book, whose past prices it marks as fixed,
// for usage to be summed with: nil while this server's book is not the
// stored one yet (the next pass sums). Without a stored book (tests set
// theirs), the book in use.
func (s *Service) fixPriceBook(ctx context.Context) (*billing.Book, error) {
	cur, err := s.books.Get(ctx, "current")
	if errdefs.IsNotFound(err) {
		return s.prices.p.Load(), nil
	}
	if err != nil {
		return nil, err
	}
	if t := s.prices.text.Load(); t == nil || *t != cur.Text {
		return nil, nil
	}
	book, err := billing.Parse([]byte(cur.Text))
	if err != nil {
		return nil, fmt.Errorf("the stored price book: %w", err)
	}
	if !cur.Fixed {
		cur.Fixed = true
		if err := s.books.Update(ctx, cur, nil); err != nil {
			return nil, fmt.Errorf("fix the stored price book's past: %w", err)
		}
	}
	return book, nil
}
