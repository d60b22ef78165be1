// Command guildnet-images builds (or finds cached) the local cluster's
// images as docker-archive tarballs and prints one "NAME ARCHIVE" line per
// image. Progress goes to stderr. See pkg/devenv/images.
//
//	guildnet-images [--cache-dir DIR] [pause|workspace|all]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/guildnet/guildnet/pkg/devenv/images"
)

func main() {
	cacheDir := flag.String("cache-dir", "", "directory for archives and layers (default ${GUILDNET_CACHE:-$HOME/.cache/guildnet}/images)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [--cache-dir DIR] [pause|workspace|all]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	which := "all"
	switch flag.NArg() {
	case 0:
	case 1:
		which = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	builders := map[string][]func(context.Context, images.Options) (images.Image, error){
		"pause":     {images.Pause},
		"workspace": {images.Workspace},
		"all":       {images.Pause, images.Workspace},
	}[which]
	if builders == nil {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := images.Options{CacheDir: *cacheDir, Progress: os.Stderr}
	for _, build := range builders {
		img, err := build(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "guildnet-images:", err)
			os.Exit(1)
		}
		fmt.Println(img.Name, img.Archive)
	}
}
