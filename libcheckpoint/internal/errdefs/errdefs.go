// Package errdefs holds the option error that libcheckpoint and its
// pure subpackages (archive) share, so both return the same type.
package errdefs

import (
	"errors"
	"fmt"
)

// ErrInvalidOption: an option's value is malformed or contradicts another.
var ErrInvalidOption = errors.New("invalid option")

// OptionError is an option refused for what it says: Option is the
// option as runc spells it (--image-path), Msg why and what to do.
// It is an ErrInvalidOption. A caller with its own names for the options
// (runcr's lxc-checkpoint dialect) renames Option and keeps Msg.
type OptionError struct {
	Option string
	Msg    string
}

func (e *OptionError) Error() string {
	return ErrInvalidOption.Error() + ": " + e.Option + ": " + e.Msg
}

func (e *OptionError) Unwrap() error { return ErrInvalidOption }

// Invalid is an OptionError for the flag --flag.
func Invalid(flag, format string, args ...any) error {
	return &OptionError{Option: "--" + flag, Msg: fmt.Sprintf(format, args...)}
}
