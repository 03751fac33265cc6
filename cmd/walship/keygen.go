package main

// walship keygen

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/repo"
)

func keygen(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError{Err: errors.New("keygen takes the file to write the secret key to")}
	}
	recipient, err := repo.GenerateKey(c.Args().First())
	if err != nil {
		return err
	}
	fmt.Println(recipient)
	return nil
}
